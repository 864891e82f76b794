"""Example plug-ins: templates for bringing your own supernet to hwnas (``--supernet MODULE:FACTORY``).

* :mod:`hwnas.examples.mlp_digits` — an elastic MLP on scikit-learn's handwritten digits
  (``--supernet hwnas.examples.mlp_digits:make_supernets``, space ``mlp-digits``).
"""
