/**
 * The operators' board (Bull Board behind authentication, the job-history
 * API, `/metrics`, alerts, health). Not built yet: the monitoring issue
 * adds it; until then this package only reserves its place and its port.
 */
export const BOARD_PORT_DEFAULT = 3000;
