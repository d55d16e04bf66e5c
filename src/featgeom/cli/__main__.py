"""``python -m featgeom.cli``: the same as the ``featgeom`` command."""

from featgeom.cli import main

if __name__ == "__main__":
    main()
