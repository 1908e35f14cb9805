"""Keypoint evidence: does the query's coat pattern line up with a gallery photo's?

extract   RootSIFT keypoints of one photo, the animal's region, the cache file format
saliency  where the animal is in a whole frame (an ImageNet CNN's feature map)
vote      one-vs-many (LNBNN) votes: the neighbour search and its weights
index     every gallery keypoint in one index per flank group: vote, then verify
verify    geometric verification (RANSAC) of matched keypoints; pairwise matching
scene     the scene check: spots that move with the place are not the animal's
store     the feature cache and the keypoint index's load / save / background writer
draw      the evidence picture (two photos, matched spots joined)
"""
