"""The CNN and its runtimes: the Keras model built from the shipped weights, its LiteRT conversion
and interpreter, and the sample photos used to check them."""
