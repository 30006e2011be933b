// json-transformer-ts: filter, pick and rename fields of JSON records.

type Row = Record<string, unknown>;

interface Input {
  data: Row[] | Row;
  pick?: string[];
  rename?: Record<string, string>;
  filter?: { field: string; equals: unknown };
}

interface Output {
  count: number;
  data: Row[];
}

export default function main(input: Input): Output {
  let rows: Row[] = Array.isArray(input.data) ? input.data : [input.data];
  if (input.filter) {
    const { field, equals } = input.filter;
    rows = rows.filter((row) => row[field] === equals);
  }
  const out = rows.map((row) => {
    const picked: Row = {};
    const keys = input.pick && input.pick.length > 0 ? input.pick : Object.keys(row);
    for (const key of keys) {
      if (key in row) {
        const target = input.rename && input.rename[key] ? input.rename[key] : key;
        picked[target] = row[key];
      }
    }
    return picked;
  });
  return { count: out.length, data: out };
}
