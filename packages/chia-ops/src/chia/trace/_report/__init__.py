"""Private: the pieces of the HTML report (see :mod:`chia.trace.report`).

``draw`` holds the SVG and text helpers, ``timeline``, ``graph`` and
``metrics`` draw one section each, ``page`` assembles the document with its
inline style and script.
"""
