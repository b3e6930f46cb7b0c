"""The Spark driver's main file in the Spark image (``/app/spark/main.py``): its arguments are ``titans``'s.

Why a file at all: spark-submit starts a Python application from a file; this one hands its argv to our
command line, whose Spark engine takes the session spark-submit set up (``titans/spark_driver.py``).
"""

import sys

from titans.spark_driver import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
