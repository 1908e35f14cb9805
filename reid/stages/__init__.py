"""The identify stages, in the order reid.identify.Pipeline.identify runs them.

decode             bytes or a file -> QueryImage: the animal's crop and what is known about it
(embed)            reid.embed: crops -> unit vectors
shortlist          FAISS neighbours grouped by individual, same flank only; global evidence
keypoint_evidence  extract, vote, verify, scene check (reid.keypoints): verified spots
sightings          images of one sighting pool their evidence
calibration        evidence -> P(same individual)
decide             ranked candidates and the verdict match / new / review
"""
