"""Shared by the bench/ chart scripts: closes an SVG drawn as a list of lines and writes it
atomically (a temporary file, then a rename)."""
import os


def write_svg(path, lines):
    """Writes lines and the closing </svg> tag to path, atomically."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines + ["</svg>"]) + "\n")
    os.replace(tmp, path)
