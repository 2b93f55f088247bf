"""Training and evaluation of the models forensic_face ships (the face super-resolution networks)."""
