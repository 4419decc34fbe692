"""The package as pip installs it: the wheel's files and metadata, the version, the extras.

The wheel is built by the build backend itself (hatchling's builder, in-process: well under a
second), so what is checked is what ``pip install .`` installs; nothing is downloaded and no
environment is created.
"""

import contextlib
import email
import io
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pytest

import ddpmkit
from ddpmkit.cli import main

ROOT = Path(__file__).resolve().parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
URLS = ("Homepage", "Documentation", "Repository", "Issues", "Changelog")
CLASSIFIERS = (
    "Development Status :: 3 - Alpha",
    "Intended Audience :: Science/Research",
    "Intended Audience :: Developers",
    "Intended Audience :: Education",
    "License :: OSI Approved :: MIT License",
    "Operating System :: OS Independent",
    *(f"Programming Language :: Python :: 3.{minor}" for minor in (10, 11, 12, 13)),
    "Topic :: Scientific/Engineering :: Artificial Intelligence",
    "Typing :: Typed",
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    """The wheel that ``pip install .`` would install, built from this checkout."""
    builder = pytest.importorskip("hatchling.builders.wheel").WheelBuilder(str(ROOT))
    folder = tmp_path_factory.mktemp("wheel")
    (path,) = builder.build(directory=str(folder), versions=["standard"])
    with zipfile.ZipFile(path) as archive:
        archive.testzip()
        yield archive


def _dist_info(wheel: zipfile.ZipFile, name: str) -> str:
    return wheel.read(f"ddpmkit-{ddpmkit.__version__}.dist-info/{name}").decode()


def _metadata(wheel: zipfile.ZipFile) -> Message:
    return email.message_from_string(_dist_info(wheel, "METADATA"))


def test_the_wheel_holds_the_package_its_type_marker_and_the_license(wheel):
    names = set(wheel.namelist())
    for name in ("ddpmkit/__init__.py", "ddpmkit/cli/main.py", "ddpmkit/py.typed"):
        assert name in names
    license_text = _dist_info(wheel, "licenses/LICENSE")
    assert "MIT License" in license_text and "the ddpmkit contributors" in license_text
    assert license_text == (ROOT / "LICENSE").read_text()
    junk = [n for n in names if n.split("/")[0] in ("tests", "runs", "bench", "docs", "src")]
    assert not junk + [n for n in names if "__pycache__" in n or ".venv" in n]


def test_the_wheel_declares_the_command(wheel):
    entry_points = _dist_info(wheel, "entry_points.txt")
    assert re.search(r"^\[console_scripts\]\nddpmkit = ddpmkit\.cli:main$", entry_points, re.M)


def test_the_metadata_has_version_license_urls_and_classifiers(wheel):
    metadata = _metadata(wheel)
    assert metadata["Name"] == "ddpmkit"
    assert metadata["Version"] == ddpmkit.__version__
    assert metadata["License-Expression"] == "MIT"
    assert metadata["License-File"] == "LICENSE"
    urls = dict(line.split(", ", 1) for line in metadata.get_all("Project-URL", []))
    assert set(URLS) <= set(urls) and all(u.startswith("https://") for u in urls.values())
    assert set(CLASSIFIERS) <= set(metadata.get_all("Classifier", []))
    assert metadata["Requires-Python"] == ">=3.10"


def test_the_version_is_written_once_in_the_package():
    assert "version" in PYPROJECT["project"]["dynamic"] and "version" not in PYPROJECT["project"]
    assert PYPROJECT["tool"]["hatch"]["version"]["path"] == "src/ddpmkit/__init__.py"
    assert re.fullmatch(r"\d+\.\d+\.\d+(\w+\d*)?", ddpmkit.__version__)


def test_version_flag_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out == f"ddpmkit {ddpmkit.__version__}\n"


def test_version_flag_does_not_load_torch():
    code = (
        "import sys, contextlib\n"
        "from ddpmkit.cli import main\n"
        "with contextlib.suppress(SystemExit):\n"
        "    main(['--version'])\n"
        "assert 'torch' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"ddpmkit {ddpmkit.__version__}\n"


def test_every_extra_that_an_error_message_names_exists():
    """``pip install ddpmkit[NAME]`` in a message must name an extra that pyproject declares."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    named = set()
    for path in (ROOT / "src" / "ddpmkit").rglob("*.py"):
        named |= set(re.findall(r"ddpmkit\[(\w+)\]", path.read_text()))
    assert named and named <= set(extras), named - set(extras)


@pytest.mark.parametrize(
    ("extra", "packages"),
    [
        ("metrics", {"torch-fidelity", "torchvision", "prdc"}),
        ("diffusers", {"diffusers"}),
        ("clip", {"transformers"}),  # networks/text.py: CLIPTextModel and CLIPTokenizer
        ("tensorboard", {"tensorboard"}),
        ("vision", {"torchvision"}),  # data/torchvision_sets.py: MNIST and CIFAR-10
        ("hub", {"huggingface_hub"}),  # storage/hub.py: snapshot_download
    ],
)
def test_each_extra_installs_what_its_code_imports(extra, packages):
    requirements = PYPROJECT["project"]["optional-dependencies"][extra]
    names = {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in requirements}
    assert packages <= names


def test_help_lists_the_version_flag():
    with contextlib.redirect_stdout(io.StringIO()) as out, pytest.raises(SystemExit):
        main(["--help"])
    assert "--version" in out.getvalue()
