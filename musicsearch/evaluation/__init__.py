"""``musicsearch eval``: how often the right recording comes back for a description, measured
through the pipeline a user's search runs. ``datasets`` reads the published caption sets
(Song Describer, MusicCaps) and plain CSVs, ``clips`` puts their clips in a folder the index
run takes, ``runner`` builds an index per model and window policy and ranks, ``metrics``
computes R@k, mAP@10, median rank and bootstrap intervals, ``report`` prints them."""
