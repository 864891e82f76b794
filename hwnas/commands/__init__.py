"""One module per `hwnas` command; `hwnas.cli` registers them."""
