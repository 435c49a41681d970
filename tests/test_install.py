"""The layout contract: converters/ and schemas/ are scipzarr.converters and
scipzarr.schemas in both the editable install and a built wheel."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # end to end: subprocesses, clusters, installs

REPO = Path(__file__).resolve().parents[1]


def test_editable_install_maps_top_level_folders():
    import scipzarr.converters
    import scipzarr.schemas
    from scipzarr.schema import load_schema

    assert Path(scipzarr.converters.__file__).parent == REPO / "converters"
    assert Path(scipzarr.schemas.__file__).parent == REPO / "schemas"
    assert load_schema("config")["title"].startswith("scipzarr")


@pytest.mark.slow
def test_wheel_contains_and_imports_converters_and_schemas(tmp_path):
    r = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", tmp_path, REPO],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next(tmp_path.glob("scipzarr-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("scipzarr/converters/ifc.py", "scipzarr/converters/__init__.py",
                   "scipzarr/schemas/config.schema.json", "scipzarr/schemas/store.schema.json",
                   "scipzarr/schemas/table.schema.json", "scipzarr/cli.py", "scipzarr/converters/cif.py",
                   "scipzarr/store/ngff.py", "scipzarr/pipeline/fov.py", "scipzarr/kernels/split.py"):
        assert needed in names
    assert not any(n.startswith(("tests/", "converters/", "schemas/")) for n in names)
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import scipzarr, scipzarr.converters, scipzarr.pipeline, scipzarr.store; "
        "from scipzarr.schema import load_schema;"
        "assert scipzarr.__file__.startswith(sys.argv[1]), scipzarr.__file__;"
        "assert scipzarr.converters.__file__.startswith(sys.argv[1]);"
        "print(load_schema('store')['title'])"
    )
    r = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "scipzarr store metadata" in r.stdout
