// The tests read JSON answers loosely; their assertions check the shape.
interface Response {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json(): Promise<any>;
}
