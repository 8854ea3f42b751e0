"""docs/security.md names the test behind each defence: every test it
names must exist, so a renamed or deleted test cannot leave a threat
quietly unproven."""

import re

from conftest import ROOT

DOC = ROOT / "docs" / "security.md"


def named_tests():
    """(file, test) pairs; `::name` continues the file named before it."""
    pairs, current = [], None
    for ref in re.findall(r"`([^`]*::[a-z_0-9]+)`", DOC.read_text()):
        path, name = ref.split("::")
        current = path or current
        pairs.append((current, name))
    return pairs


def test_every_test_the_threat_model_names_exists():
    pairs = named_tests()
    assert len(pairs) > 40
    missing = []
    for path, name in pairs:
        text = (ROOT / path).read_text()
        if not re.search(rf"\b(def|fn) {name}\b", text):
            missing.append(f"{path}::{name}")
    assert missing == []


def test_every_file_the_threat_model_names_exists():
    for path in re.findall(r"`((?:tests|supa-[a-z]+)/[^`:]+)`", DOC.read_text()):
        assert (ROOT / path).exists(), path
