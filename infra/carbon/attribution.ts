export interface DataAttribution {
  name: string;
  /** What gpufleet takes from it. */
  use: string;
  licence: string;
  /** Credit line to show wherever its figures are shown or redistributed. */
  credit: string;
  origin: string;
}

/** Sources of every carbon and latency figure in infra/, with the credit each licence asks for. */
export const CARBON_DATA_ATTRIBUTION: readonly DataAttribution[] = [
  {
    name: "Electricity Maps yearly zone data (2024, 2025)",
    use: "yearly average lifecycle grid carbon intensity per zone",
    licence: "ODbL-1.0",
    credit:
      "Contains data from Electricity Maps (electricitymaps.com), made available under the ODbL; derived databases stay under the ODbL.",
    origin: "thegreenwebfoundation/co2.js data/output/electricity-maps/yearly_YYYY.json",
  },
  {
    name: "Google Cloud region carbon data (2019-2024)",
    use: "yearly grid carbon intensity and carbon-free energy share per Google Cloud region",
    licence: "Apache-2.0",
    credit: "Google Cloud region carbon data, GoogleCloudPlatform/region-carbon-info.",
    origin: "GoogleCloudPlatform/region-carbon-info data/yearly/YYYY.csv",
  },
  {
    name: "Cloud Carbon Footprint coefficients",
    use: "grid emission factors per AWS, Azure and GCP region (fallback of last resort)",
    licence: "Apache-2.0",
    credit:
      "Cloud Carbon Footprint, cloud-carbon-footprint/cloud-carbon-coefficients (factors from EPA eGRID, EEA, carbonfootprint.com, Google).",
    origin: "cloud-carbon-footprint/cloud-carbon-coefficients data/grid-emissions-factors-*.csv",
  },
  {
    name: "Inter-region RTT matrix and GCP region → zone map",
    use: "round-trip latency between Google Cloud locations, keyed by Electricity Maps zone",
    licence: "Apache-2.0",
    credit: "umassos/decarbonization-potential (Sukprasert et al.).",
    origin:
      "umassos/decarbonization-potential shared_data/gcp_latency_matrix.csv, gcp_dc_zonecode_mapper.json",
  },
  {
    name: "Electricity Maps API (live and forecast)",
    use: "live and forecast carbon intensity when an API token is configured",
    licence: "Electricity Maps API terms",
    credit: "Carbon intensity data provided by Electricity Maps.",
    origin: "https://api.electricitymaps.com/v3",
  },
  {
    name: "WattTime API",
    use: "marginal operating emissions rate (co2_moer) and signal index when credentials are configured",
    licence: "WattTime API terms",
    credit: "Marginal emissions data provided by WattTime.",
    origin: "https://api.watttime.org/v3",
  },
  {
    name: "Green Software Foundation Carbon Aware SDK",
    use: "self-hosted Web API aggregating the providers above",
    licence: "MIT",
    credit: "Green Software Foundation Carbon Aware SDK.",
    origin: "Green-Software-Foundation/carbon-aware-sdk",
  },
];

/** One line per source, suitable for a CLI footer or a generated report. */
export function attributionText(): string {
  return CARBON_DATA_ATTRIBUTION.map((a) => `- ${a.name} (${a.licence}): ${a.credit}`).join("\n");
}
