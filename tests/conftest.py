"""Shared test settings."""

import os

# One BLAS thread: the suite runs on 2-core machines where oversubscribed BLAS threads in
# the IPI baseline's SVDs slow everything down many times over.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
