"""forensic_face: cross-resolution face identification (Meet-in-the-middle) for forensic investigators."""

__version__ = "0.1.0"
