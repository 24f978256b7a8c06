export async function run(): Promise<Record<string, unknown>> { return { bench: "enricher", todo: true }; }
