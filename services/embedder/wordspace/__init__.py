"""The word space: GloVe vectors, class names as words, and the heads (ConSE, DeViSE) that map an
image into it."""
