# Misuses the API; mypy must report each line marked "error".
import tfimm_cache

length: int = tfimm_cache.cached_model_path("a")  # error: Optional[str] is not int
tfimm_cache.set_model_cache("a", 18)  # error: 18 is not a path
tfimm_cache.list_cached_models().add("x")  # error: a list has no add
tfimm_cache.Registry().audit(3)  # error: audit's options are keyword-only
