#!/usr/bin/env python3
"""Checks that no room includes a header of a room it does not link.

Usage: layering_check.py SOURCE_DIR ROOMS_TXT

ROOMS_TXT is written by CMake (cmake/LayerfsRooms.cmake): one line per room, "dir: dirs of the
rooms it links directly". A room may include its own headers and those of every room it links,
directly or through another room; anything else (an arrow up, or sideways between rooms that
do not link each other) is reported with file and line, and the exit status is 1.
"""
import pathlib
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def read_rooms(rooms_txt):
    direct = {}
    for line in pathlib.Path(rooms_txt).read_text().splitlines():
        room, _, deps = line.partition(":")
        direct[room.strip()] = deps.split()
    return direct


def reachable(direct, room):
    seen, todo = set(), [room]
    while todo:
        for dep in direct.get(todo.pop(), []):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def room_of(path, rooms):
    folder = str(pathlib.PurePosixPath(path).parent)
    return folder if folder in rooms else None


def main(source_dir, rooms_txt):
    source = pathlib.Path(source_dir)
    direct = read_rooms(rooms_txt)
    if not direct:
        print(f"{rooms_txt}: no rooms")
        return 1
    problems = []
    for room in sorted(direct):
        allowed = reachable(direct, room) | {room}
        for file in sorted((source / room).glob("*")):
            if file.suffix not in (".h", ".cc"):
                continue
            for number, line in enumerate(file.read_text().splitlines(), 1):
                match = INCLUDE.match(line)
                if not match:
                    continue
                target = room_of(match.group(1), direct)
                if target is not None and target not in allowed:
                    problems.append(f"{room}/{file.name}:{number}: includes {match.group(1)}, "
                                    f"but {room} does not link {target}")
    for problem in problems:
        print(problem)
    print(f"{len(direct)} rooms checked, {len(problems)} includes against the layering")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
