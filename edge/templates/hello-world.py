"""hello-world: greet someone by name; proves the platform works end to end."""


def main(input_data):
    name = str(input_data.get("name") or "World")
    return {"greeting": f"Hello, {name}!"}
