"""The ``reconcile`` command: parsing, one module per command, and what people read.

``main`` parses arguments and refuses options a mode would ignore; ``commands/`` holds one
module per command (its ``run`` turns user errors into messages and exit codes); ``render``
gives the plan's and the status's views (text and JSON); ``terminal`` draws the progress of
transfers and of verify's hashing (rich's bars on a terminal, plain lines elsewhere); ``logs``
sets up plain or JSON logging.

May: use every layer.  Nothing imports it.
"""
