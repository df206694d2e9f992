"""Laws fitted to run tables; each is registered by name for the fit JSON round trip."""
from .base import LAWS, Law, load_fit
from .chinchilla import ChinchillaLaw
from .curve import CurveLaw
from .hparams import HparamsLaw
from .isoflop import IsoflopLaw
from .power import PowerLaw
from .selection import AutoLaw
from .sparsity import SparsityLaw

__all__ = ["LAWS", "Law", "load_fit", "ChinchillaLaw", "CurveLaw", "HparamsLaw", "IsoflopLaw", "PowerLaw",
           "AutoLaw", "SparsityLaw"]
