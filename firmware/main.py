# main.py only starts the firmware: stim/main.py loads the board, runs the app and makes the
# outputs safe on every way out (SR-8), including Ctrl-C from the host, before the REPL gets
# control. Kept this short because MicroPython compiles main.py from source at every boot.
from stim import main

main.run()
