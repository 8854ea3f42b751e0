"""The `supa` command the wheel installs: runs the binary it ships."""

import os
import sys

from .platform import find_supa


def main():
    binary = str(find_supa())
    os.execv(binary, [binary, *sys.argv[1:]])
