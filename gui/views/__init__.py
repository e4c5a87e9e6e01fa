"""The canvas: the graph scene and what it draws, its layout, and the view on it.

``layout/`` (Qt-free) places cards and routes links; ``lens`` chooses what is drawn
(folded chains, one VM, a filter); ``scene`` keeps the cards (``node_card``) and links
(``edges``) of one snapshot, painted by layers (``cards``, ``edges``, ``frames``);
``canvas`` is the view with its gestures, ``minimap`` its overview, ``view_controls``
the View menu's fold / focus / filter; ``export`` writes readable pictures.
"""
