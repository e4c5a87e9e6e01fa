"""Stacking order of the canvas's layers and the zoom levels where drawing changes.

One home for these numbers, so the layers (frames, links, cards, the drag edge) and
the canvas agree on them without importing each other.
"""

from __future__ import annotations

#: VM frames, below everything else
FRAME_Z = -2.0
#: the links, below the cards, so cards are drawn over the ends of their links
EDGE_Z = -1.0
#: the cards
NODE_Z = 10.0
#: the links' labels, over the cards so a label on a card stays legible
LABEL_Z = 20.0
#: the edge that follows the cursor while a backing link is dragged
DRAG_Z = 50.0

#: below this zoom cards are filled rectangles and links one-pixel lines
LOW_DETAIL = 0.3
#: link labels (a job link's role, permissions) are drawn from this zoom on
LABEL_DETAIL = 0.4
#: a card's driver chip, file, size and allocation bar are drawn from this zoom on
CARD_DETAIL = 0.55
