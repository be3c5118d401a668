"""Run the order demo; its code, with comments, is in busway/demo.py."""

from busway.demo import main

main()
