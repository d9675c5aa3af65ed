"""Plan files as people keep them: Word documents, pasted tables, spreadsheets.

Each reader turns a file into `Block`s (its tables, as the application shows them, and the
text between them); `layout.plan_rows` finds the plan in those blocks. Nothing here writes.
"""
