"""`scalelab data prepare`: a text corpus made into the token files `data=tokens data.dir=DIR` reads.

The modules, in the order a run uses them: `sources` (the input files and their documents),
`split` (which documents are held out), `tokenizer` (bytes, a BPE trained on the corpus, or a
tokenizer.json), `writer` (the output folder, replaced whole or not at all), `meta` (meta.json,
read again by training), `progress` and `command` (the run itself).

This package imports nothing heavy on its own: training reads `meta` alone.
"""
