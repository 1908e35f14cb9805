"""Camtrap DP 1.0.2 (TDWG): datapackage.json, deployments.csv, media.csv, observations.csv and a
custom `individuals` resource, as the standard's own example adds one.

One deployment per camera (station as locationID/locationName), one media row per file, one
media-level observation per detection: `eventID` is the encounter (shared by the two cameras of
a pair), boxes are normalised, `classificationMethod` says human (confirmed in the catalogue)
or machine (a season run), and `observationTags` carry the flank (`flank:left`).
"""

from __future__ import annotations

import csv
import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from reid.errors import ReidError
from reid.exports import register_exporter
from reid.exports.capture import unique_ids
from reid.exports.records import TAXON, Deployment, Detection, ExportData

BASE = "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/"
PROFILE = BASE + "camtrap-dp-profile.json"
DEPLOYMENT_FIELDS = ["deploymentID", "locationID", "locationName", "latitude", "longitude", "coordinateUncertainty",
                     "deploymentStart", "deploymentEnd", "setupBy", "cameraID", "cameraModel", "cameraDelay",
                     "cameraHeight", "cameraDepth", "cameraTilt", "cameraHeading", "detectionDistance",
                     "timestampIssues", "baitUse", "featureType", "habitat", "deploymentGroups", "deploymentTags",
                     "deploymentComments"]
MEDIA_FIELDS = ["mediaID", "deploymentID", "captureMethod", "timestamp", "filePath", "filePublic", "fileName",
                "fileMediatype", "exifData", "favorite", "mediaComments"]
OBSERVATION_FIELDS = ["observationID", "deploymentID", "mediaID", "eventID", "eventStart", "eventEnd",
                      "observationLevel", "observationType", "cameraSetupType", "scientificName", "count",
                      "lifeStage", "sex", "behavior", "individualID", "individualPositionRadius",
                      "individualPositionAngle", "individualSpeed", "bboxX", "bboxY", "bboxWidth", "bboxHeight",
                      "classificationMethod", "classifiedBy", "classificationTimestamp",
                      "classificationProbability", "observationTags", "observationComments"]
INDIVIDUAL_FIELDS = [("individualID", "string"), ("individualName", "string"), ("scientificName", "string"),
                     ("sex", "string"), ("status", "string"), ("firstSeen", "datetime"), ("lastSeen", "datetime"),
                     ("flanksKnown", "string"), ("detections", "integer")]
_MEDIATYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".tif": "image/tiff",
               ".tiff": "image/tiff", ".webp": "image/webp", ".mp4": "video/mp4", ".avi": "video/x-msvideo",
               ".mov": "video/quicktime"}


def _iso(ts: datetime, data: ExportData) -> str:
    return ts.replace(tzinfo=data.options.tz).isoformat(timespec="seconds")


def _bbox(det: Detection) -> list[str]:
    if det.box is None or not det.width or not det.height:
        return ["", "", "", ""]
    x, y, w, h = det.box
    fx, fy = min(max(x / det.width, 0.0), 1.0), min(max(y / det.height, 0.0), 1.0)
    return [f"{fx:.4f}", f"{fy:.4f}", f"{min(w / det.width, 1.0 - fx):.4f}", f"{min(h / det.height, 1.0 - fy):.4f}"]


def _relative(path: str) -> str:
    """filePath must be a relative path that does not start with . / ~ nor climb with `..`."""
    parts = [p for p in PurePosixPath(path.replace("\\", "/")).parts if p not in ("/", ".", "..", "~")]
    return re.sub(r"\.{2,}", ".", "/".join(parts)).lstrip(".~") or "unnamed"


def _sex(value: str | None) -> str:
    v = (value or "").strip().lower()
    return {"f": "female", "female": "female", "m": "male", "male": "male"}.get(v, "")


def _write(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _resource(name: str, path: str, schema: Any) -> dict[str, Any]:
    return {"name": name, "path": path, "profile": "tabular-data-resource", "format": "csv",
            "mediatype": "text/csv", "encoding": "utf-8", "schema": schema}


@register_exporter
class CamtrapDPExporter:
    name = "camtrap-dp"
    description = "Camtrap DP 1.0.2 data package with individuals (GBIF-ready)"

    def write(self, data: ExportData, out_dir: Path) -> list[Path]:
        policy = data.options.coordinates
        if policy.mode == "withhold":
            raise ReidError("Camtrap DP requires deployment coordinates; use --coordinates round:N "
                            "(e.g. round:1, about 11 km) to generalise them instead")
        deps: dict[str, Deployment] = {}
        for d in data.deployments:
            lat, lon = policy.apply(d.lat, d.lon)
            if lat is not None and lon is not None and d.start is not None and d.end is not None:
                deps[d.deployment_id] = Deployment(d.deployment_id, d.station, d.camera, lat, lon, d.start, d.end)
        dets = [d for d in data.detections if d.deployment_id in deps and d.timestamp is not None]
        if len(dets) < len(data.detections):
            data.left_out["Camtrap DP: no deployment with coordinates and dates, or no timestamp"] += (
                len(data.detections) - len(dets))
        ids = unique_ids(list(data.individuals))
        media: dict[str, list[Any]] = {}
        observations = []
        for n, det in enumerate(dets, start=1):
            ts = _iso(det.timestamp, data)  # type: ignore[arg-type]
            path = PurePosixPath(det.path)
            media.setdefault(det.media_id, [
                det.media_id, det.deployment_id, "activityDetection", ts, _relative(det.path), "false", path.name,
                _MEDIATYPES.get(path.suffix.lower(), "image/jpeg"), "", "", ""])
            info = data.individuals.get(det.individual or "")
            tags = [f"flank:{det.flank}", f"decision:{det.decision}"]
            if info is not None:
                tags.append(f"individual:{'confirmed' if info.confirmed else 'putative-new'}")
            animal = det.decision != "empty"
            observations.append([
                f"obs{n:06d}", det.deployment_id, det.media_id, det.encounter, ts, ts, "media",
                "animal" if animal else "blank", "", TAXON["scientificName"] if animal else "",
                1 if animal else "", "", _sex(info.sex) if info else "", "", ids.get(det.individual or "", ""),
                "", "", "", *_bbox(det), det.method, det.classified_by, "",
                "" if det.probability is None or info is None else f"{det.probability:.4f}",
                " | ".join(tags), det.travel_note])
        files = [
            _write(out_dir / "deployments.csv", DEPLOYMENT_FIELDS, [self._deployment_row(d, data) for d in deps.values()]),
            _write(out_dir / "media.csv", MEDIA_FIELDS, list(media.values())),
            _write(out_dir / "observations.csv", OBSERVATION_FIELDS, observations),
            _write(out_dir / "individuals.csv", [f for f, _ in INDIVIDUAL_FIELDS], self._individuals(data, dets, ids)),
        ]
        package = self._descriptor(data, list(deps.values()), dets)
        files.append(out_dir / "datapackage.json")
        files[-1].write_text(json.dumps(package, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return files

    @staticmethod
    def _deployment_row(d: Deployment, data: ExportData) -> list[Any]:
        row = dict.fromkeys(DEPLOYMENT_FIELDS, "")
        row.update(deploymentID=d.deployment_id, locationID=d.station, locationName=d.station, latitude=d.lat,
                   longitude=d.lon, coordinateUncertainty=data.options.coordinates.uncertainty_m or "",
                   cameraID=d.camera, deploymentStart=_iso(d.start, data),  # type: ignore[arg-type]
                   deploymentEnd=_iso(d.end, data))  # type: ignore[arg-type]
        return list(row.values())

    @staticmethod
    def _individuals(data: ExportData, dets: list[Detection], ids: dict[str, str]) -> list[list[Any]]:
        rows = []
        for key, info in sorted(data.individuals.items()):
            times = [d.timestamp for d in dets if d.individual == key and d.timestamp is not None]
            if not times:
                continue
            flanks = sorted(info.flanks_known & {"left", "right"})
            rows.append([ids[key], key, TAXON["scientificName"], _sex(info.sex),
                         "confirmed" if info.confirmed else "putative new (machine grouping)",
                         _iso(min(times), data), _iso(max(times), data), "|".join(flanks), len(times)])
        return rows

    @staticmethod
    def _descriptor(data: ExportData, deps: list[Deployment], dets: list[Detection]) -> dict[str, Any]:
        project = data.options.project
        lats = [d.lat for d in deps if d.lat is not None] or [0.0]
        lons = [d.lon for d in deps if d.lon is not None] or [0.0]
        # A GeoJSON polygon needs an area: pad a single station by a hundredth of a degree.
        s, n, w, e = min(lats), max(lats), min(lons), max(lons)
        if n - s < 1e-6:
            s, n = s - 0.01, n + 0.01
        if e - w < 1e-6:
            w, e = w - 0.01, e + 0.01
        times = [t for d in deps for t in (d.start, d.end) if t is not None] or [
            d.timestamp for d in dets if d.timestamp is not None] or [datetime.now()]
        title = project.get("title") or "Persian leopard camera-trap identifications"
        descriptor: dict[str, Any] = {
            "profile": PROFILE,
            "name": project.get("name") or "leopard-reid-export",
            "id": str(uuid.uuid4()),
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "title": title,
            "contributors": project.get("contributors") or [{"title": "reid export (set contributors with --project)",
                                                             "role": "contributor"}],
            "description": project.get("description") or (
                "Camera-trap detections of individually identified leopards, exported by the leopard "
                "re-identification service: confirmed identifications (classificationMethod human) and a "
                "season run's machine identifications (machine); observationTags carry the flank."),
            "version": "1.0",
            "keywords": ["camera traps", "individual identification", "Panthera pardus"],
            "project": {
                "id": project.get("id") or "", "title": project.get("project_title") or title,
                "samplingDesign": project.get("samplingDesign") or "targeted",
                "captureMethod": ["activityDetection"], "individualAnimals": True, "observationLevel": ["media"],
            },
            "spatial": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
            "temporal": {"start": f"{min(times):%Y-%m-%d}", "end": f"{max(times):%Y-%m-%d}"},
            "taxonomic": project.get("taxonomic") or [TAXON],
            "resources": [
                _resource("deployments", "deployments.csv", BASE + "deployments-table-schema.json"),
                _resource("media", "media.csv", BASE + "media-table-schema.json"),
                _resource("observations", "observations.csv", BASE + "observations-table-schema.json"),
                {**_resource("individuals", "individuals.csv", {
                    "fields": [{"name": f, "type": t} for f, t in INDIVIDUAL_FIELDS], "primaryKey": "individualID"}),
                 "description": "Custom resource (not part of the Camtrap DP model): the individuals in "
                                "observations.individualID, with status and the flanks they are known by."},
            ],
        }
        if data.options.coordinates.mode == "round":
            descriptor["coordinatePrecision"] = 10 ** -data.options.coordinates.decimals
        if not descriptor["project"]["id"]:
            del descriptor["project"]["id"]
        return descriptor
