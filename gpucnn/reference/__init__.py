"""NumPy reference implementation of every op: the ``cpu`` backend and the test oracle.

Same function names and signatures as ``gpucnn.cuda``; see docs/architecture.md for the op contract.
"""
