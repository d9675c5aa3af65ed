"""Importing plan files: read here (`plan_files`, with the Word and pasted-table readers
beside it), resolved and written by `storage.importer`. This is the `import_plan` the CLI,
the demo and the tests call."""

from __future__ import annotations

from functools import partial

from handlers.files import plan_files
from storage import importer

import_plan = partial(importer.import_plan, reader=plan_files)
