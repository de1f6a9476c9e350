# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Symlink routing for ``stackops.platform.blue_green``: switch colours (and split traffic) without an nginx reload.

The nginx side (written by the api role, never by a switch) routes every request through a symlink that nginx
resolves per request::

    split_clients "${request_id}" $<app>_slot { 10% 0; ... * 9; }        # 10 slots of 10 %
    root <routing_dir>/split/slot$<app>_slot;                            # in the site's location
    map $realpath_root $<app>_backend { ~/blue$ <app>_blue; ~/green$ <app>_green; }
    proxy_pass http://$<app>_backend;                                    # a defined upstream, with keepalive

The routing directory holds::

    blue/  green/                 empty directories, the targets
    sets/<pattern>/slot0..slot9   one link per slot to ../../blue or ../../green; <pattern> names them,
                                  e.g. ``ggbbbbbbbb`` = slots 0-1 green (20 %), the rest blue
    split -> sets/<pattern>       the live routing, replaced by one atomic rename

A switch (or canary step) builds the set it needs (once; sets are never removed, a worker may be resolving an
old one) and renames ``split`` onto it: all ten slots move at once, nginx keeps every client and upstream
connection, and keep-alive connections to the old colour just idle out. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import re

from ansible_collections.stackops.platform.plugins.module_utils.file_primitives import fsync_dir

SLOTS = 10
WEIGHT_STEP = 100 // SLOTS
LETTERS = {"blue": "b", "green": "g"}
COLOR_OF = {letter: color for color, letter in LETTERS.items()}
PATTERN_RE = re.compile(rf"^[bg]{{{SLOTS}}}$")
SPLIT = "split"
SETS = "sets"
# The routing file (api role's upstream include) names the routing directory on this line.
MARKER = "# stackops routing: {routing_dir}"


def other(color):
    return "green" if color == "blue" else "blue"


def validate_weight(weight):
    """Share (percent) of the target colour: 0..100 in steps of WEIGHT_STEP, or raise ValueError."""
    if weight is None:
        return 100
    if not 0 <= weight <= 100 or weight % WEIGHT_STEP:
        raise ValueError(
            f"weight {weight} is not usable: give 0 to 100 in steps of {WEIGHT_STEP} "
            f"(nginx splits traffic into {SLOTS} slots of {WEIGHT_STEP} %)"
        )
    return weight


def normalise(color, weight):
    """(colour, weight) with weight 0 turned into the other colour at 100 (both mean the same routing)."""
    return (other(color), 100) if weight == 0 else (color, weight)


def pattern_for(color, weight):
    """The slot pattern giving ``weight`` % to ``color``: its slots first, e.g. green 20 -> ``ggbbbbbbbb``."""
    count = weight // WEIGHT_STEP
    return LETTERS[color] * count + LETTERS[other(color)] * (SLOTS - count)


def weights_of(pattern):
    """{'blue': percent, 'green': percent} of a slot pattern."""
    return {color: pattern.count(letter) * WEIGHT_STEP for color, letter in LETTERS.items()}


def sole_color(pattern):
    """The colour that gets every slot of ``pattern``, or None when it is split."""
    if pattern is None:
        return None
    colors = {COLOR_OF[letter] for letter in pattern}
    return colors.pop() if len(colors) == 1 else None


def describe(pattern):
    if pattern is None:
        return "no routing yet"
    shares = weights_of(pattern)
    return f"{SPLIT} -> {SETS}/{pattern} (blue {shares['blue']} %, green {shares['green']} %)"


def marker(routing_dir):
    return MARKER.format(routing_dir=os.path.abspath(routing_dir))


def routing_file_ok(text, routing_dir):
    """Whether the nginx routing file routes through ``routing_dir`` (the api role writes the marker line)."""
    return bool(text) and marker(routing_dir) in text.splitlines()


def read_pattern(routing_dir):
    """The live slot pattern (``split``'s target), or None when there is none; ValueError when it is foreign."""
    path = os.path.join(routing_dir, SPLIT)
    try:
        target = os.readlink(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"{path} is not a symlink ({exc})") from None
    head, _sep, name = target.rpartition("/")
    if head != SETS or not PATTERN_RE.match(name):
        raise ValueError(f"{path} points at {target!r}, expected {SETS}/<10 letters b or g>")
    return name


def _replace_symlink(target, path):
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(target, tmp)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def ensure_set(routing_dir, pattern):
    """Create the colour directories and ``sets/<pattern>`` (built aside, renamed into place) when missing."""
    for color in LETTERS:
        os.makedirs(os.path.join(routing_dir, color), mode=0o755, exist_ok=True)
    sets = os.path.join(routing_dir, SETS)
    os.makedirs(sets, mode=0o755, exist_ok=True)
    final = os.path.join(sets, pattern)
    if os.path.isdir(final) and slot_colors(routing_dir, pattern) == [COLOR_OF[c] for c in pattern]:
        return False
    tmp = os.path.join(sets, f".{pattern}.tmp-{os.getpid()}")
    _remove_tree(tmp)
    os.mkdir(tmp, 0o755)
    try:
        for slot, letter in enumerate(pattern):
            os.symlink(f"../../{COLOR_OF[letter]}", os.path.join(tmp, f"slot{slot}"))
        _remove_tree(final)  # a damaged set nobody routes to (split never points at it here)
        os.rename(tmp, final)
    except BaseException:
        _remove_tree(tmp)
        raise
    fsync_dir(sets)
    return True


def _remove_tree(path):
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        for name in os.listdir(path):
            _remove_tree(os.path.join(path, name))
        os.rmdir(path)


def point_split(routing_dir, pattern):
    """Route by ``pattern``: ``split`` renamed onto ``sets/<pattern>`` in one atomic step."""
    _replace_symlink(f"{SETS}/{pattern}", os.path.join(routing_dir, SPLIT))
    fsync_dir(routing_dir)


def remove_split(routing_dir):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(routing_dir, SPLIT))
    fsync_dir(routing_dir)


def slot_colors(routing_dir, pattern=None):
    """The colour each slot resolves to, as nginx's ``$realpath_root`` sees it (None for a broken slot)."""
    base = os.path.join(routing_dir, SETS, pattern) if pattern else os.path.join(routing_dir, SPLIT)
    colors = []
    for slot in range(SLOTS):
        real = os.path.realpath(os.path.join(base, f"slot{slot}"))
        name = os.path.basename(real)
        ok = name in LETTERS and os.path.isdir(real) and os.path.dirname(real) == os.path.realpath(routing_dir)
        colors.append(name if ok else None)
    return colors
