# boot.py runs first after every reset and soft reset (SR-8): make the outputs safe before
# anything else, whatever the previous program left on the pins.
import stim.safe

stim.safe.boot_safe()
