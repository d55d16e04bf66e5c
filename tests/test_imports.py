import subprocess
import sys


def test_importing_featgeom_does_not_import_saelens():
    code = ("import sys, featgeom, featgeom.world, featgeom.family, featgeom.store, featgeom.cli; "
            "heavy = [m for m in ('sae_lens', 'transformer_lens', 'transformers') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
