"""Digests: what each network should read this week, built from statuses and rendered."""
