from __future__ import annotations

from qflow.cli import main

raise SystemExit(main())
