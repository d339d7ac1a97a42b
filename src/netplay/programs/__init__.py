"""The programs: classic Python network programs, each runnable with ``python3 -m``.

Each module has a ``main(argv)`` that parses its options and prints, and
importable pieces that neither print nor exit.  docs/programs.md maps
them to their topics and shows how to run each in the playground.
"""
