"""Use-cases, one module each, that every channel calls: `answers` decides and records
an answer, whichever way it came."""
