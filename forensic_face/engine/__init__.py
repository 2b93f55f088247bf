"""The Meet-in-the-middle engine: tensors in, tensors out. No Qt, SQLite or PDF code may be imported here."""
