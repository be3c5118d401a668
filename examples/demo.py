"""Run the order demo; its code, with comments, is in busline/demo.py."""

from busline.demo import main

main()
