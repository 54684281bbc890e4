#!/usr/bin/env python3
"""Docker Stacks before-notebook hook (an executable, so run-hooks runs it in its own process
rather than sourcing it): enable the carbon-sdk IPython extension, check the configuration the
chart injects, log a one-line `carbon-sdk doctor` summary. Never fails startup: exits 0."""

import sys

try:
    from carbon_sdk._startup import main
except BaseException as exc:  # the SDK is broken or missing: say so, let the server start
    reason = f"{type(exc).__name__}: {exc}"
    print(f"WARNING: carbon-sdk: startup hook skipped ({reason})", file=sys.stderr)
    sys.exit(0)

sys.exit(main())
