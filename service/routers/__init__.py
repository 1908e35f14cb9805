"""One APIRouter per resource: identify, individuals (with enrollment), images, health."""
