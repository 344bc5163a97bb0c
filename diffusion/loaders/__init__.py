"""Model loaders, one module per kind of part. Every part, real or tiny, loads through
``from_pretrained`` (or ``from_single_file``), so tests take the path real weights take."""
