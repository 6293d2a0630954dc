"""Plimsoll keepers: long-running bots built on the SDK (web3.py only, no brownie)."""

import os as _os

# The keepers' numpy work is small products per block: one BLAS thread (a multi-threaded
# OpenBLAS spins for tens of milliseconds on a loaded machine). Set before numpy loads.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
