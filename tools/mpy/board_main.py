# /main.py on a board (a firmware bundle's only source file): MicroPython runs it after
# boot.py. Kept to one line because it is compiled on the board's heap; the work is in
# edge/boot.mpy: the network and the clock, then the agent (edge.main) with config.json.
import edge.boot  # noqa: F401
