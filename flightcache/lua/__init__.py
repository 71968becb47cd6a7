"""The Lua scripts flightcache runs on Valkey, one ``.lua`` file each; see
:mod:`flightcache.scripting` for how they are loaded and run."""
