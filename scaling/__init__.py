"""The scaling study: a ladder run as one experiment, `scalelab train -m sweeps=ladder`.

It drives the sweeper (`hydra/sweeper=scaling`, a `ScalelabSweeper` whose `run_ladder` it
overrides) and reads records through the analysis:

1. `pricing`: before any trial, N, D, C per scale, the trials, the total FLOPs and a wall time
   from each model size's throughput measured here;
2. `study`: the scales in ascending compute. The first `wide_scales` search the configured
   range; each later one a range centred on the lr law fitted to the scales before it
   (`guidance`), whose prediction is the study's first trial. With `transfer` (µP only), a
   scale wider than its budget's smallest width runs one trial at that width's best rate; with
   `branches` (schedule=wsd), each model size trains only its largest budget and forks a
   cooldown branch at each smaller one. After each scale's study, its best trial runs again
   with `seeds` more seeds;
3. `verification`: L(N, D) and lr* (and bs*) fitted on every scale with bootstrap intervals
   (`fits/loss.json`, `fits/hparams.json`, files `scalelab predict` reads); the compute-optimal
   model at the target budget predicted, trained with its IsoFLOP neighbours and an lr scan,
   and judged in `verdict.json`.

Everything after the trials is a function of the stored records: a killed study is rerun with
the same command; a finished scale is not run again, a started one keeps its stored range.
Its settings are `hydra.sweeper.scaling.*` (`settings`).
"""
