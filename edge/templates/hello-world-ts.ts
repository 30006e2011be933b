// hello-world-ts: greet someone by name (TypeScript).

interface Input {
  name?: string;
}

interface Output {
  greeting: string;
}

export default function main(input: Input): Output {
  const name = input && input.name ? String(input.name) : "World";
  return { greeting: `Hello, ${name}!` };
}
