# SPDX-License-Identifier: MIT
"""``python -m llm_rate_limiter.cli``: the ``llm-rate-limiter`` command."""

from __future__ import annotations

import sys

from ._main import main

sys.exit(main())
