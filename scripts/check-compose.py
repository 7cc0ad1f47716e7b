#!/usr/bin/env python3
"""Checks a Compose file (docker-compose.yml by default) without Docker.

1. Its YAML, as Compose reads it: anchors, aliases and merge keys resolved; a key given twice
   in one mapping is refused, as Compose refuses it.
2. The Compose Specification's JSON Schema, vendored in tests/fixtures/compose-spec.json
   (tests/fixtures/compose-spec.README.md says where it comes from), with the validator of the
   draft the schema declares. Each violation is printed with its path in the file.
3. What `docker-compose config` checked beyond the schema and is cheap to keep: every service
   has an image or a build; the services, named volumes, networks, configs and secrets that a
   service names are declared; every file or folder the file names on this machine by a
   relative path (build contexts and their Dockerfiles, env files, bind-mount sources, config,
   secret, extends and include files) exists, relative to the Compose file's folder; each `$`
   is a valid interpolation (`$$`, `$VAR`, `${VAR}`, `${VAR:-default}`...). Variables are not
   substituted: the values are checked as written.

Usage: scripts/check-compose.py [FILE]. Exit status: 0 valid, 1 violations (each printed),
2 the check could not run (a missing Python module, an unreadable file).
Needs PyYAML and jsonschema (4.0 or later, for draft 2020-12); scripts/test.sh installs them.
"""

import json
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA = os.path.join(REPO, "tests", "fixtures", "compose-spec.json")


def fail(message):
    print(f"check-compose: {message}", file=sys.stderr)
    sys.exit(2)


try:
    import yaml
except ImportError:
    fail("the Python module 'yaml' is missing: install PyYAML (python3 -m pip install PyYAML)")
try:
    import jsonschema
    import jsonschema.exceptions
    import jsonschema.validators
except ImportError:
    fail("the Python module 'jsonschema' is missing: install it (python3 -m pip install jsonschema)")


class Loader(yaml.SafeLoader):
    """YAML as Compose reads it: a mapping that gives a key twice is an error (a key that a
    merge key `<<` brings in may be given again: that is an override)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, (str, int, float, bool)) or key is None:
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            "while constructing a mapping", node.start_mark, f"found the key {key!r} twice", key_node.start_mark
                        )
                    seen.add(key)
        return super().construct_mapping(node, deep=deep)


def where(path):
    """A JSON path as a dotted path in the file: services.haproxy.ports[0]."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(the top level)"


def defined(root, schema, seen=None):
    """The property names and name patterns a schema defines, through its allOf, anyOf, oneOf
    and local $refs."""
    seen = seen if seen is not None else set()
    properties, patterns = set(), set()
    if not isinstance(schema, dict) or id(schema) in seen:
        return properties, patterns
    seen.add(id(schema))
    properties |= set(schema.get("properties") or {})
    patterns |= set(schema.get("patternProperties") or {})
    parts = [p for k in ("allOf", "anyOf", "oneOf") for p in schema.get(k) or []]
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target = root
        for token in ref[2:].split("/"):
            target = target.get(token.replace("~1", "/").replace("~0", "~"), {}) if isinstance(target, dict) else {}
        parts.append(target)
    for part in parts:
        more, more_patterns = defined(root, part, seen)
        properties |= more
        patterns |= more_patterns
    return properties, patterns


def schema_violations(document):
    try:
        with open(SCHEMA, encoding="utf-8") as f:
            schema = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"cannot read the Compose schema {SCHEMA}: {e}")
    cls = jsonschema.validators.validator_for(schema, default=None)
    if cls is None:
        fail(f"this jsonschema does not know the schema's draft, {schema.get('$schema')}: upgrade it")
    cls.check_schema(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    errors = list(validator.iter_errors(document))
    out = []
    for error in errors:
        at = list(error.absolute_path)
        message = error.message
        if error.validator == "unevaluatedProperties":
            # A service's properties are evaluated through allOf: when one part fails (its
            # errors are reported on their own), every property of that part is named here as
            # unevaluated. Only the names no part defines are unknown properties.
            named = re.findall(r"'([^']*)'", message.split("(", 1)[-1])
            properties, patterns = defined(schema, error.schema)
            unknown = [n for n in named if n not in properties and not any(re.search(p, n) for p in patterns)]
            if not unknown:
                continue
            message = f"unknown propert{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))} (not in the Compose Specification)"
        elif error.context:
            out += closest(error)
            continue
        out.append((where(at), message))
    return sorted(set(out))


def closest(error):
    """A oneOf/anyOf error ("is not valid under any of the given schemas" says little): the
    errors of the alternative that came closest, which say what to change. An alternative of
    another type altogether (a list where the file has a mapping) is not the closest."""
    if not error.context:
        return [(where(error.absolute_path), error.message)]
    candidates = [e for e in error.context if not (e.validator == "type" and not e.path)]
    if not candidates:
        types = []
        for e in error.context:
            types += e.validator_value if isinstance(e.validator_value, list) else [e.validator_value]
        return [(where(error.absolute_path), f"{error.instance!r} is not of a type it may take ({', '.join(dict.fromkeys(types))})")]
    branch = jsonschema.exceptions.best_match(candidates).relative_schema_path[0]
    out = []
    for e in candidates:
        if e.relative_schema_path[0] == branch:
            out += [(at, f"{message} (of the forms {where(error.absolute_path)} may take, the closest)") if at == where(error.absolute_path) else (at, message) for at, message in closest(e)]
    return out


# `$$`, `$NAME`, `${NAME}`, `${NAME:-x}`, `${NAME-x}`, `${NAME:?x}`, `${NAME?x}`, `${NAME:+x}`,
# `${NAME+x}`: Compose's interpolation. Any other `$` is an error to Compose.
INTERPOLATION = re.compile(r"\$(?:\$|[A-Za-z_][A-Za-z0-9_]*|\{[A-Za-z_][A-Za-z0-9_]*(?::?[-?+][^}]*)?\})")


def interpolation_errors(value, path, out):
    if isinstance(value, dict):
        for k, v in value.items():
            interpolation_errors(v, path + [k], out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            interpolation_errors(v, path + [i], out)
    elif isinstance(value, str):
        rest = INTERPOLATION.sub("", value)
        if "$" in rest:
            out.append((where(path), f"{value!r}: invalid interpolation (write $$ for a literal $)"))


def is_remote(path):
    return bool(re.match(r"^[a-z][a-z0-9+.-]*://|^git@|^github\.com/", path))


def reference_errors(document, base):
    """What Compose checks beyond the schema: references between the file's parts, and the
    local files and folders the file names."""
    out = []

    def local(path, what, at, folder=False):
        if not isinstance(path, str) or is_remote(path) or os.path.isabs(os.path.expanduser(path)):
            return
        full = os.path.join(base, path)
        if not (os.path.isdir(full) if folder else os.path.exists(full)):
            out.append((where(at), f"{what} {path!r} does not exist (relative to {base})"))

    def declared(kind):
        section = document.get(kind)
        return set(section) if isinstance(section, dict) else set()

    services = document.get("services") if isinstance(document.get("services"), dict) else {}
    volumes, networks = declared("volumes"), declared("networks") | {"default"}
    configs, secrets = declared("configs"), declared("secrets")
    for kind in ("configs", "secrets"):
        for name, entry in (document.get(kind) or {}).items():
            if isinstance(entry, dict) and "file" in entry:
                local(entry["file"], f"the {kind[:-1]} file", [kind, name, "file"])
    for i, entry in enumerate(document.get("include") or []):
        paths = entry.get("path") if isinstance(entry, dict) else entry
        for path in [paths] if isinstance(paths, str) else paths or []:
            local(path, "the included file", ["include", i])

    def service(name, at):
        if name not in services:
            out.append((where(at), f"names the service {name!r}, which the file does not define"))

    for name, s in services.items():
        if not isinstance(s, dict):
            continue
        at = ["services", name]
        if "image" not in s and "build" not in s and "extends" not in s:
            out.append((where(at), "has neither an image nor a build"))
        build = s.get("build")
        if isinstance(build, str):
            build = {"context": build}
        if isinstance(build, dict):
            context = build.get("context", ".")
            local(context, "the build context", at + ["build"], folder=True)
            if isinstance(context, str) and not is_remote(context) and "dockerfile_inline" not in build:
                dockerfile = build.get("dockerfile", "Dockerfile")
                if isinstance(dockerfile, str) and not os.path.isabs(dockerfile):
                    local(os.path.join(context, dockerfile), "the Dockerfile", at + ["build"])
        env_files = s.get("env_file")
        for i, env in enumerate([env_files] if isinstance(env_files, str) else env_files or []):
            if isinstance(env, dict):
                if env.get("required", True) is not False:
                    local(env.get("path"), "the env file", at + ["env_file", i])
            else:
                local(env, "the env file", at + ["env_file", i])
        extends = s.get("extends")
        if isinstance(extends, str):
            service(extends, at + ["extends"])
        elif isinstance(extends, dict):
            if "file" in extends:
                local(extends["file"], "the extended file", at + ["extends", "file"])
            elif isinstance(extends.get("service"), str):
                service(extends["service"], at + ["extends", "service"])
        depends = s.get("depends_on") or []
        for dep in depends if isinstance(depends, list) else list(depends):
            service(dep, at + ["depends_on", dep])
        for i, link in enumerate(s.get("links") or []):
            if isinstance(link, str):
                service(link.split(":")[0], at + ["links", i])
        for i, source in enumerate(s.get("volumes_from") or []):
            if isinstance(source, str) and not source.startswith("container:"):
                service(source.split(":")[1] if source.startswith("service:") else source.split(":")[0], at + ["volumes_from", i])
        for key in ("network_mode", "pid", "ipc"):
            if isinstance(s.get(key), str) and s[key].startswith("service:"):
                service(s[key][len("service:"):], at + [key])
        for i, volume in enumerate(s.get("volumes") or []):
            vat = at + ["volumes", i]
            if isinstance(volume, str):
                parts = volume.split(":")
                if len(parts) < 2:
                    continue  # an anonymous volume: only a path in the container
                kind = "bind" if parts[0].startswith((".", "/", "~")) else "volume"
                source = parts[0]
            elif isinstance(volume, dict):
                kind, source = volume.get("type"), volume.get("source")
            else:
                continue
            if kind == "bind":
                local(source, "the bind-mount source", vat)
            elif kind == "volume" and isinstance(source, str) and source not in volumes:
                out.append((where(vat), f"names the volume {source!r}, which the top-level volumes do not declare"))
        nets = s.get("networks") or []
        for net in nets if isinstance(nets, list) else list(nets):
            if net not in networks:
                out.append((where(at + ["networks", net]), f"names the network {net!r}, which the top-level networks do not declare"))
        for kind, names in (("configs", configs), ("secrets", secrets)):
            for i, ref in enumerate(s.get(kind) or []):
                ref = ref.get("source") if isinstance(ref, dict) else ref
                if isinstance(ref, str) and ref not in names:
                    out.append((where(at + [kind, i]), f"names the {kind[:-1]} {ref!r}, which the top-level {kind} do not declare"))
    return out


def main(argv):
    if len(argv) > 2 or (len(argv) == 2 and argv[1] in ("-h", "--help")):
        print(__doc__.strip())
        return 0 if len(argv) == 2 else 2
    path = argv[1] if len(argv) == 2 else os.path.join(REPO, "docker-compose.yml")
    name = os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path
    try:
        with open(path, encoding="utf-8") as f:
            document = yaml.load(f, Loader=Loader)
    except OSError as e:
        fail(f"cannot read {path}: {e}")
    except yaml.YAMLError as e:
        print(f"{name}: not YAML as Compose reads it: {e}")
        return 1
    if not isinstance(document, dict):
        print(f"{name}: (the top level): a Compose file is a mapping, not {type(document).__name__}")
        return 1

    problems = schema_violations(document)
    interpolation_errors(document, [], problems)
    if not problems:
        # References are looked at in a file whose shape is right.
        problems += reference_errors(document, os.path.dirname(os.path.abspath(path)))
    for at, message in problems:
        print(f"{name}: {at}: {message}")
    if "version" in document:
        print(f"{name}: note: the top-level 'version' is obsolete; the Compose Specification ignores it", file=sys.stderr)
    if problems:
        print(f"{name}: {len(problems)} problem(s) against the Compose Specification")
        return 1
    print(f"{name}: valid (the Compose Specification's schema, {len(document.get('services') or {})} services, every reference and local path found)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
