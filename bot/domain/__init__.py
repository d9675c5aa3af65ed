"""The pure core: the rules that decide things, on plain data, with no I/O and no clock."""
