"""The test suite, laid out like the package it tests (tests/engine/ tests forensic_face/engine/, and so on).

Every folder is a package, so pytest's default (prepend) import mode names each test module by its path
(``tests.store.test_store``) and a test imports another test module's helpers by that name, wherever it lies.
"""
